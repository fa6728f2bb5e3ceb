# evaluate: one metrics file per dataset x model, plus the truth-vs-truth noise floor.

# The CaloChallenge's classifier (evaluation.c2st_classifier: cc22) trains 2,048-unit
# networks for 50 epochs: the job that wants a GPU, so the rules ask the cluster for one.
EVALUATE_GPU = 1 if (config.get("evaluation") or {}).get("c2st_classifier") == "cc22" else 0


rule evaluate:
    input:
        sample="results/{dataset}/samples/{model}.h5",
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
    output:
        metrics="results/{dataset}/metrics/{model}.json",
    params:
        io=io_args,
        spec=evaluate_params,
    log:
        "results/logs/{dataset}/evaluate/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/evaluate_{model}.tsv"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
        gpu=EVALUATE_GPU,
    shell:
        "hepgenbench evaluate {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


rule evaluate_truth:
    input:
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
    output:
        metrics="results/{dataset}/metrics/truth.json",
    params:
        io=io_args,
        spec=evaluate_params,
    log:
        "results/logs/{dataset}/evaluate/truth.log",
    benchmark:
        "results/benchmarks/{dataset}/evaluate_truth.tsv"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
        gpu=EVALUATE_GPU,
    shell:
        "hepgenbench evaluate {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


# The truth null of a dataset: truth-vs-truth on random re-splits of the truth holdout at the
# models' sample size (p-values) and at smaller sizes (the equivalent truth sample size).
rule null:
    input:
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
    output:
        null="results/{dataset}/null.json",
    params:
        io=io_args,
        spec=lambda w: stage_params("null", dataset=w.dataset),
    log:
        "results/logs/{dataset}/null.log",
    benchmark:
        "results/benchmarks/{dataset}/null.tsv"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=60,
    shell:
        "hepgenbench null {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"
