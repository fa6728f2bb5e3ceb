# source -> (merge) -> ingest -> split: from generated or user files to a flat event table.
# The dataset's source (hepgenbench.kinds) says whether the workflow generates it, into
# which file, and whether in seeded chunks (merged ROOT files) or in one job.


def source_files(wildcards):
    src = dataset_source(wildcards.dataset)
    if src.embedded:
        return [f"results/{{dataset}}/source/events.{src.file_suffix}"]
    return user_files(wildcards.dataset)


def source_chunks(wildcards):
    n = records.SourceParams.from_config(config, wildcards.dataset).chunks
    return expand("results/{{dataset}}/source/chunks/{chunk}.root", chunk=range(n))


rule generate_pythia_chunk:
    output:
        data="results/{dataset}/source/chunks/{chunk}.root",
    params:
        io=io_args,
        spec=lambda w: stage_params("source", dataset=w.dataset, chunk=w.chunk),
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
        spec=lambda w: stage_params("source", dataset=w.dataset),
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
        spec=lambda w: stage_params("ingest", dataset=w.dataset),
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
        spec=lambda w: stage_params("split", dataset=w.dataset),
    log:
        "results/logs/{dataset}/split.log",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "hepgenbench split {params.io} --params {params.spec:q} > {log} 2>&1"
