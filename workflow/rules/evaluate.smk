# evaluate: one metrics file per dataset x model, plus the truth-vs-truth noise floor.


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
