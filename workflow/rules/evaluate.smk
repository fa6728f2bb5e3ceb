# evaluate: one metrics file per dataset x model, plus the truth-vs-truth noise floor.


def evaluate_params(wildcards):
    return stage_params("evaluate", dataset=wildcards.dataset, model=wildcards.get("model", "truth"))


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
