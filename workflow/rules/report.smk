# plots (per dataset) -> report (one page for the whole benchmark).
# The report is the self-contained results/report/index.html (with report.md and
# metrics.csv); `snakemake --report` is not used: it would show the same figures without
# the tables' reading against truth's noise floor, from a second set of captions to keep.


rule plots:
    input:
        events="results/{dataset}/data/events.h5",
        split="results/{dataset}/data/split.h5",
        samples=lambda w: expand("results/{dataset}/samples/{model}.h5", dataset=w.dataset, model=instances_for(w.dataset)),
        metrics=lambda w: expand(
            "results/{dataset}/metrics/{model}.json", dataset=w.dataset, model=instances_for(w.dataset) + ["truth"]
        ),
        training_csvs=lambda w: expand(
            "results/{dataset}/models/{model}/training.csv", dataset=w.dataset, model=trained_instances_for(w.dataset)
        ),
    output:
        plots=directory("results/{dataset}/plots"),
    params:
        io=io_args,
        spec=lambda w: stage_params("plots", dataset=w.dataset, models=instances_for(w.dataset)),
    log:
        "results/logs/{dataset}/plots.log",
    benchmark:
        "results/benchmarks/{dataset}/plots.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "hepgenbench plots {params.io} --params {params.spec:q} > {log} 2>&1"


rule report:
    input:
        metrics=[f"results/{d}/metrics/{m}.json" for d in DATASETS for m in instances_for(d) + ["truth"]],
        manifests=[f"results/{d}/plots" for d in DATASETS] + [f"results/{d}/budget/plots" for d in DATASETS],
        nulls=[f"results/{d}/null.json" for d in DATASETS],
        budget=[f"results/{d}/budget/{m}.json" for d in DATASETS for m in trained_instances_for(d)],
    output:
        html="results/report/index.html",
        markdown="results/report/report.md",
        csv="results/report/metrics.csv",
    params:
        io=io_args,
        spec=stage_params("report"),
    log:
        "results/logs/report.log",
    shell:
        "hepgenbench report {params.io} --params {params.spec:q} > {log} 2>&1 && "
        "echo 'hepgenbench: report written to '$(realpath {output.html})"
