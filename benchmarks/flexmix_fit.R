# Times R flexmix on a CSV written by bench_ml.py, for a same-run comparison.
# Usage: Rscript flexmix_fit.R data.csv formula k seed [family] [extra]
# family (optional, default "gaussian") is a glm family for FLXMRglm, e.g. "poisson" or
# "binomial" (with a formula such as cbind(y, n - y) ~ x1 + x2). extra (optional, default
# 0): that many more fits from random partitions (stepFlexmix(nrep = extra)), timed with
# the first; the best log likelihood is kept: the same number of starts as bayesfmm's
# default fit when its search ran.
# flexmix starts from the partition bayesfmm's default start uses (k equal groups by
# quantiles of the response residuals y - mu of a 1-class fit: least squares for the
# gaussian, a glm for other families), so both fit the same problem from the same place;
# a random partition often loses classes at large n.
# Prints one line: seconds logLik iterations classes_kept
suppressPackageStartupMessages(library(flexmix))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
k <- as.integer(args[3])
set.seed(as.integer(args[4]))
form <- as.formula(args[2])
family <- if (length(args) >= 5) args[5] else "gaussian"
extra <- if (length(args) >= 6) as.integer(args[6]) else 0L
elapsed <- system.time({
  if (family == "gaussian") {
    resid <- residuals(lm(form, data = data))
  } else {
    resid <- residuals(glm(form, data = data, family = family), type = "response")
  }
  start <- findInterval(resid, quantile(resid, seq_len(k - 1) / k)) + 1
  fit <- flexmix(form, data = data, k = k, cluster = start, model = FLXMRglm(family = family))
  if (extra > 0) {
    more <- stepFlexmix(form, data = data, k = k, nrep = extra, model = FLXMRglm(family = family), verbose = FALSE)
    if (logLik(more) > logLik(fit)) fit <- more
  }
})[["elapsed"]]
cat(elapsed, as.numeric(logLik(fit)), fit@iter, fit@k, "\n")
