# source -> (merge) -> ingest -> split: from generated or user files to a flat event table.
# The dataset's source (hepgenbench.kinds) says whether the workflow generates it, into
# which file, and whether in seeded chunks (merged ROOT files) or in one job.


def source_files(wildcards):
    src = dataset_source(wildcards.dataset)
    if src.embedded:
        return [f"results/{{dataset}}/source/events.{src.file_suffix}"]
    return user_files(wildcards.dataset)


def source_chunks(wildcards):
    n = config["datasets"][wildcards.dataset].get("chunks", 1)
    return expand("results/{{dataset}}/source/chunks/{chunk}.root", chunk=range(n))


def source_params(wildcards, chunk=0):
    ds = config["datasets"][wildcards.dataset]
    n_chunks = ds.get("chunks", 1) if dataset_source(wildcards.dataset).chunked else 1
    # Chunks share the events evenly; the first takes the remainder.
    n = ds["n_events"] // n_chunks + (ds["n_events"] % n_chunks if int(chunk) == 0 else 0)
    seed = derive_seed(config["seed"], wildcards.dataset, "source", chunk)
    return as_json({**ds, "n_events": n, "seed": seed})


rule generate_pythia_chunk:
    output:
        data="results/{dataset}/source/chunks/{chunk}.root",
    params:
        io=io_args,
        spec=lambda w: source_params(w, w.chunk),
    log:
        "results/logs/{dataset}/source/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/{dataset}/source_chunk{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=120,
    shell:
        "hepgenbench source {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


rule merge_pythia:
    input:
        chunks=source_chunks,
    output:
        data="results/{dataset}/source/events.root",
    params:
        io=io_args,
    log:
        "results/logs/{dataset}/source/merge.log",
    shell:
        "hepgenbench merge {params.io} > {log} 2>&1"


rule generate_events:
    output:
        data="results/{dataset}/source/events.h5",
    params:
        io=io_args,
        spec=lambda w: source_params(w),
    log:
        "results/logs/{dataset}/source/generate.log",
    benchmark:
        "results/benchmarks/{dataset}/source.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    shell:
        "hepgenbench source {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


rule ingest:
    input:
        files=source_files,
    output:
        events="results/{dataset}/data/events.h5",
    params:
        io=io_args,
        spec=lambda w: as_json({**config["datasets"][w.dataset], "name": w.dataset}),
    log:
        "results/logs/{dataset}/ingest.log",
    benchmark:
        "results/benchmarks/{dataset}/ingest.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "hepgenbench ingest {params.io} --params {params.spec:q} > {log} 2>&1"


rule split:
    input:
        events="results/{dataset}/data/events.h5",
    output:
        split="results/{dataset}/data/split.h5",
    params:
        io=io_args,
        spec=lambda w: as_json(
            {"split": config["datasets"][w.dataset].get("split", {}), "seed": derive_seed(config["seed"], w.dataset, "split")}
        ),
    log:
        "results/logs/{dataset}/split.log",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "hepgenbench split {params.io} --params {params.spec:q} > {log} 2>&1"
