# Oracle for tests/test_selection.py and tests/test_criteria.py: R flexmix's model search
# (stepFlexmix) on NregFix, y ~ x2 + x1 with k = 1..5 and nrep = 10, and the k = 3 fit's
# parameters and posterior class probabilities.
#
#   Rscript tests/reference/flexmix_nregfix.R > tests/reference/flexmix_nregfix.json
#
# R 4.2, flexmix 2.3-18 (Debian r-cran-flexmix). flexmix's gaussian M-step divides the
# residual sum of squares by (sum of weights - p) rather than the sum of weights, so its
# logLik sits slightly below the exact maximum an ML fit reaches.
suppressPackageStartupMessages(library(flexmix))
data("NregFix", package = "flexmix")
set.seed(20240601)
fits <- stepFlexmix(y ~ x2 + x1, data = NregFix, k = 1:5, nrep = 10, verbose = FALSE)

num <- function(x) sprintf("%.17g", x)
vec <- function(x) paste0("[", paste(num(x), collapse = ", "), "]")
mat <- function(m) paste0("[", paste(apply(m, 1, vec), collapse = ",\n  "), "]")

rows <- character(0)
for (k in 1:5) {
  f <- getModel(fits, as.character(k))
  rows <- c(rows, sprintf(
    '"%d": {"k_fitted": %d, "logLik": %s, "df": %d, "nobs": %d, "AIC": %s, "BIC": %s, "ICL": %s, "clogLik": %s}',
    k, f@k, num(logLik(f)), attr(logLik(f), "df"), nrow(NregFix), num(AIC(f)), num(BIC(f)),
    num(ICL(f)), num(flexmix:::clogLik(f))))
}

f3 <- getModel(fits, "3")
p3 <- parameters(f3)
prior3 <- prior(f3)
post3 <- posterior(f3)

# the published model of the flexmix paper: class probabilities depending on w
set.seed(20240601)
fw <- stepFlexmix(y ~ x2 + x1, data = NregFix, k = 3, nrep = 10, concomitant = FLXPmultinom(~ w),
                  verbose = FALSE)

cat("{\n")
cat('"source": "R ', as.character(getRversion()), ', flexmix ', as.character(packageVersion("flexmix")),
    ': stepFlexmix(y ~ x2 + x1, data = NregFix, k = 1:5, nrep = 10), set.seed(20240601)",\n', sep = "")
cat('"by_k": {\n', paste(rows, collapse = ",\n"), "\n},\n", sep = "")
cat('"k3": {"parameter_rows": ', paste0("[", paste0('"', rownames(p3), '"', collapse = ", "), "]"),
    ', "parameters": ', mat(t(p3)), ', "prior": ', vec(prior3), ",\n", sep = "")
cat('"posterior": ', mat(post3), "},\n", sep = "")
cat('"k3_concomitant_w": {"logLik": ', num(logLik(fw)), ', "df": ', attr(logLik(fw), "df"),
    ', "BIC": ', num(BIC(fw)), ', "ICL": ', num(ICL(fw)), "}\n", sep = "")
cat("}\n")
