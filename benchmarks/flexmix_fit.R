# Times R flexmix on a CSV written by bench_ml.py, for a same-run comparison.
# Usage: Rscript flexmix_fit.R data.csv formula k seed [family]
# family (optional, default "gaussian") is a glm family for FLXMRglm, e.g. "poisson" or
# "binomial" (with a formula such as cbind(y, n - y) ~ x1 + x2).
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
elapsed <- system.time({
  if (family == "gaussian") {
    resid <- residuals(lm(form, data = data))
  } else {
    resid <- residuals(glm(form, data = data, family = family), type = "response")
  }
  start <- findInterval(resid, quantile(resid, seq_len(k - 1) / k)) + 1
  fit <- flexmix(form, data = data, k = k, cluster = start, model = FLXMRglm(family = family))
})[["elapsed"]]
cat(elapsed, as.numeric(logLik(fit)), fit@iter, fit@k, "\n")
