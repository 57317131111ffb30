# Times R flexmix on a CSV written by bench_ml.py, for a same-run comparison.
# Usage: Rscript flexmix_fit.R data.csv formula k seed
# flexmix starts from the partition bayesfmm's default start uses (k equal groups by
# quantiles of the residuals of a 1-class least-squares fit), so both fit the same
# problem from the same place; a random partition often loses classes at large n.
# Prints one line: seconds logLik iterations classes_kept
suppressPackageStartupMessages(library(flexmix))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
k <- as.integer(args[3])
set.seed(as.integer(args[4]))
form <- as.formula(args[2])
elapsed <- system.time({
  resid <- residuals(lm(form, data = data))
  start <- findInterval(resid, quantile(resid, seq_len(k - 1) / k)) + 1
  fit <- flexmix(form, data = data, k = k, cluster = start)
})[["elapsed"]]
cat(elapsed, as.numeric(logLik(fit)), fit@iter, fit@k, "\n")
