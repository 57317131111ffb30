# R flexmix oracles for tests/test_flexmix_count.py (run from the repository root):
#   Rscript tests/reference/flexmix_count.R > tests/reference/flexmix_count.txt
# R 4.2, flexmix 2.3-18 (Debian r-base-core, r-cran-flexmix). The data are the CSVs bundled
# with bayesfmm (the same values as flexmix's own data sets). Each model is fitted from
# 20 random starts (stepFlexmix, nrep = 20) with EM run to a tight tolerance and
# minprior = 0, so that flexmix neither stops early nor drops small classes.
suppressPackageStartupMessages(library(flexmix))
data_dir <- file.path("bayesfmm", "datasets", "data")
ctrl <- list(minprior = 0, tolerance = 1e-12, iter.max = 20000)

report <- function(name, fit) {
  cat("==", name, "==\n")
  cat(sprintf("logLik %.8f df %d nobs %d\n", as.numeric(logLik(fit)), attr(logLik(fit), "df"), nrow(fit@posterior$scaled)))
  cat(sprintf("iterations %d converged %s k %d\n", fit@iter, fit@converged, fit@k))
  cat("prior:", sprintf("%.8f", prior(fit)), "\n")
  print(parameters(fit), digits = 10)
  se <- tryCatch(summary(refit(fit)), error = function(e) NULL)
  if (!is.null(se)) print(se)
  cat("\n")
}

set.seed(20240611)
fabric <- read.csv(file.path(data_dir, "fabricfault.csv"))
fit_fabric <- stepFlexmix(Faults ~ log(Length), data = fabric, k = 2, nrep = 20,
                          model = FLXMRglm(family = "poisson"), control = ctrl, verbose = FALSE)
report("fabricfault poisson Faults ~ log(Length), k = 2, unconstrained", fit_fabric)

set.seed(20240611)
beta <- read.csv(file.path(data_dir, "betablocker.csv"))
beta$Treatment <- factor(beta$Treatment, levels = c("Control", "Treated"))
fit_beta <- stepFlexmix(cbind(Deaths, Total - Deaths) ~ Treatment, data = beta, k = 3, nrep = 20,
                        model = FLXMRglm(family = "binomial"), control = ctrl, verbose = FALSE)
report("betablocker binomial Deaths ~ Treatment (trials Total), k = 3, no grouping", fit_beta)
