# train -> sample: one job per dataset x model (x replica), all independent, so they run in
# parallel locally and spread over nodes on a cluster.

TRAIN_RESOURCES = config.get("resources", {}).get("train", {})


rule train:
    input:
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
        transform="results/{dataset}/preprocess/transform.json",
    output:
        model="results/{dataset}/models/{model}/model.pt",
        log_csv="results/{dataset}/models/{model}/training.csv",
        # the weights at fractions of the budget, scored by rule budget (workflow/rules/budget.smk)
        budget_checkpoints="results/{dataset}/models/{model}/budget_checkpoints.pt",
    params:
        io=io_args,
        spec=lambda w: stage_params("train", dataset=w.dataset, model=w.model),
    wildcard_constraints:
        model=TRAINED_INSTANCES,
    log:
        "results/logs/{dataset}/train/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/train_{model}.tsv"
    # One thread per job: on small cores two torch threads beside another busy job ran
    # a spline-flow epoch 3x slower than one (notes/verified-facts.md).
    threads: lambda w: train_settings(w.dataset, w.model).threads
    resources:
        mem_mb=TRAIN_RESOURCES.get("mem_mb", 4000),
        runtime=lambda w: TRAIN_RESOURCES.get("runtime", train_runtime(w.dataset, w.model)),
        gpu=TRAIN_RESOURCES.get("gpu", 0),
    shell:
        "hepgenbench train {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


rule sample:
    input:
        model="results/{dataset}/models/{model}/model.pt",
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
        transform="results/{dataset}/preprocess/transform.json",
    output:
        sample="results/{dataset}/samples/{model}.h5",
    params:
        io=io_args,
        spec=lambda w: stage_params("sample", dataset=w.dataset, model=w.model),
    wildcard_constraints:
        model=TRAINED_INSTANCES,
    log:
        "results/logs/{dataset}/sample/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/sample_{model}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=TRAIN_RESOURCES.get("gpu", 0),
    shell:
        "hepgenbench sample {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


# A user's samples (models.<name>: {family: external, samples: FILE}), read with the
# dataset's own reader and checked against truth; a changed file reruns its evaluation.
rule external:
    input:
        external=lambda w: external_file(w.model, w.dataset),
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
    output:
        sample="results/{dataset}/samples/{model}.h5",
    wildcard_constraints:
        model=EXTERNAL_INSTANCES,
    params:
        io=io_args,
        spec=lambda w: stage_params("external", dataset=w.dataset, model=w.model),
    log:
        "results/logs/{dataset}/external/{model}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "hepgenbench external {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"
