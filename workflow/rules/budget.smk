# Quality against training compute (hepgenbench.budget): each model's weights at fractions
# of its budget, scored with the C2ST AUC on a subsample, then one figure per dataset.


rule budget:
    input:
        model="results/{dataset}/models/{model}/model.pt",
        checkpoints="results/{dataset}/models/{model}/budget_checkpoints.pt",
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
        transform="results/{dataset}/preprocess/transform.json",
    output:
        curve="results/{dataset}/budget/{model}.json",
    params:
        io=io_args,
        spec=lambda w: stage_params("budget", dataset=w.dataset, model=w.model),
    log:
        "results/logs/{dataset}/budget/{model}.log",
    benchmark:
        "results/benchmarks/{dataset}/budget_{model}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "hepgenbench budget {params.io} --params {params.spec:q} --threads {threads} > {log} 2>&1"


rule budget_plots:
    input:
        curves=lambda w: expand("results/{dataset}/budget/{model}.json", dataset=w.dataset, model=trained_instances_for(w.dataset)),
    output:
        plots=directory("results/{dataset}/budget/plots"),
    params:
        io=io_args,
        spec=lambda w: stage_params("budget_plots", dataset=w.dataset, models=trained_instances_for(w.dataset)),
    log:
        "results/logs/{dataset}/budget_plots.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "hepgenbench budget_plots {params.io} --params {params.spec:q} > {log} 2>&1"
