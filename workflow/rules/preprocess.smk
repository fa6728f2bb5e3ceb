# preprocess: invertible transforms fitted on the training split only.


rule preprocess:
    input:
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
    output:
        transform="results/{dataset}/preprocess/transform.json",
    params:
        io=io_args,
        spec=lambda w: stage_params("preprocess", dataset=w.dataset),
    log:
        "results/logs/{dataset}/preprocess.log",
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "hepgenbench preprocess {params.io} --params {params.spec:q} > {log} 2>&1"
