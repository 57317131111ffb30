# Oracle for tests/test_survey.py: R's survey package (svyglm, Taylor-linearized variance) on a
# simulated stratified, cluster-sampled data set with sampling weights and a finite population
# correction.
#
#   cd tests/reference/survey && Rscript make_survey_reference.R
#
# writes survey_data.csv (the data, every number with 17 significant digits) and
# survey_reference.json (coefficients, linearized SEs and design df of every fit, 17 digits).
# The fits are made on the data as read back from survey_data.csv, so Python and R use the
# same doubles. R 4.2.2 with survey 4.1-1 (Debian r-base-core, r-cran-survey).
#
# Designs (svydesign(ids = ~psu, strata = ~str, weights = ~w, fpc = ..., nest = TRUE)):
#   full       strata str, PSUs psu, weights w, fpc N_psu (PSUs in the stratum's population)
#   fraction   the same with the fpc given as the sampling fraction f_psu = m_h / N_h
#   cluster    one stratum, PSUs psu (labels made unique), weights w, no fpc
#   single_*   strata str1 (two PSUs moved to strata of their own: strata with one PSU), no fpc,
#              options(survey.lonely.psu = "certainty" | "average" | "adjust"), which are
#              Stata's singleunit(certainty | scaled | centered)
#   subpop     the full design, subset(design, sub == 1) (Stata's svy, subpop(sub))
# Families: gaussian (identity), poisson (log), quasibinomial (logit: same estimates and SEs
# as binomial, without the non-integer-weight warning).
suppressPackageStartupMessages(library(survey))

set.seed(20240919)
n_strata <- 8
rows <- list()
psu_id <- 0
for (h in 1:n_strata) {
  m_h <- sample(4:7, 1)
  N_h <- m_h * sample(3:9, 1)
  for (i in 1:m_h) {
    psu_id <- psu_id + 1
    size <- sample(5:14, 1)
    u <- rnorm(1, sd = 0.5)                # PSU effect: scores correlate within PSUs
    x1 <- rnorm(size, mean = 0.2 * h)
    x2 <- rbinom(size, 1, 0.4)
    w <- runif(1, 5, 15) * runif(size, 0.8, 1.25)
    rows[[length(rows) + 1]] <- data.frame(
      str = h, psu = i, psu_unique = psu_id, w = w, N_psu = N_h, f_psu = m_h / N_h,
      x1 = x1, x2 = x2,
      yg = 1 + 0.5 * x1 - 0.7 * x2 + u + rnorm(size),
      yp = rpois(size, exp(0.3 + 0.3 * x1 - 0.4 * x2 + 0.5 * u)),
      yb = rbinom(size, 1, plogis(-0.2 + 0.8 * x1 - 0.6 * x2 + u)),
      sub = rbinom(size, 1, 0.6)
    )
  }
}
d <- do.call(rbind, rows)
# strata with one PSU: PSU 1 of strata 1 and 2 move to strata 9 and 10
d$str1 <- d$str
d$str1[d$str == 1 & d$psu == 1] <- 9
d$str1[d$str == 2 & d$psu == 1] <- 10

num <- function(x) sprintf("%.17g", x)
out <- d
for (col in names(out)) out[[col]] <- num(out[[col]])
write.csv(out, "survey_data.csv", row.names = FALSE, quote = FALSE)
d <- read.csv("survey_data.csv")

designs <- list(
  full = svydesign(ids = ~psu, strata = ~str, weights = ~w, fpc = ~N_psu, nest = TRUE, data = d),
  fraction = svydesign(ids = ~psu, strata = ~str, weights = ~w, fpc = ~f_psu, nest = TRUE, data = d),
  cluster = svydesign(ids = ~psu_unique, weights = ~w, data = d),
  single = svydesign(ids = ~psu, strata = ~str1, weights = ~w, nest = TRUE, data = d)
)
designs$subpop <- subset(designs$full, sub == 1)
lonely <- c(single_certainty = "certainty", single_scaled = "average", single_centered = "adjust")
families <- list(gaussian = list(y = "yg", family = gaussian()),
                 poisson = list(y = "yp", family = poisson()),
                 logit = list(y = "yb", family = quasibinomial()))

vec <- function(x) paste0("[", paste(num(x), collapse = ", "), "]")
entry <- function(name, design, fam) {
  f <- families[[fam]]
  fit <- svyglm(as.formula(paste(f$y, "~ x1 + x2")), design = design, family = f$family,
                control = glm.control(epsilon = 1e-14, maxit = 100))
  sprintf('"%s/%s": {"terms": ["Intercept", "x1", "x2"], "coef": %s, "se": %s, "df": %d}',
          name, fam, vec(coef(fit)), vec(sqrt(diag(vcov(fit)))), degf(design))
}
items <- character(0)
for (name in c("full", "fraction", "cluster", "subpop")) {
  options(survey.lonely.psu = "fail")
  for (fam in names(families)) items <- c(items, entry(name, designs[[name]], fam))
}
for (name in names(lonely)) {
  options(survey.lonely.psu = lonely[[name]])
  for (fam in names(families)) items <- c(items, entry(name, designs$single, fam))
}
info <- sprintf('"_about": {"R": "%s", "survey": "%s", "n": %d}', R.version.string,
                as.character(packageVersion("survey")), nrow(d))
writeLines(c("{", paste(c(info, items), collapse = ",\n"), "}"), "survey_reference.json")
