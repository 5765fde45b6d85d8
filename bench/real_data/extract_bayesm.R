#!/usr/bin/env Rscript
# Writes the bayesm retail data sets tuna, cheese and orangeJuice as CSV files into the folder given as the
# first argument (Debian: apt-get install r-cran-bayesm). Nothing is downloaded; the data ship with the package.
#
#   Rscript bench/real_data/extract_bayesm.R /work/realdata/raw
#
# Files written (columns exactly as in bayesm):
#   tuna.csv        WEEK, MOVE1..7 (unit sales), NSALE1..7 (display activity), LPRICE1..7 (log price),
#                   LWHPRIC1..7 (log wholesale price), FULLCUST (customer visits); 338 weeks
#                   numbered 1..398 (60 weeks absent, one 40-week hole), one chain (Dominick's)
#   cheese.csv      ROW (1-based row order within the retailer = week index), RETAILER, VOLUME (units),
#                   DISP (share of ACV on display, 0..1), PRICE (USD); 88 retailers, 52-68 weeks, no dates
#   orangeJuice.csv orangeJuice$yx: store, brand, week, logmove (log units), constant, price1..price11 (price of each
#                   brand), deal (0/1 in-store coupon), feat (0..1 feature advertisement), profit
#   orangeJuice_storedemo.csv  store demographics (not used by prepare.py)
suppressPackageStartupMessages(library(bayesm))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: extract_bayesm.R OUTPUT_FOLDER")
out <- args[1]
dir.create(out, recursive = TRUE, showWarnings = FALSE)

write <- function(frame, name) {
  path <- file.path(out, paste0(name, ".csv"))
  write.csv(frame, path, row.names = FALSE, na = "")
  cat(sprintf("%-28s %7d rows x %3d columns -> %s\n", name, nrow(frame), ncol(frame), path))
}

data(tuna, package = "bayesm")
stopifnot(!anyDuplicated(tuna$WEEK))  # weeks 1..398 with gaps (60 weeks absent): kept as they are
write(tuna, "tuna")

data(cheese, package = "bayesm")
cheese$RETAILER <- as.character(cheese$RETAILER)
# the data set has no week column: rows of a retailer are in week order, so number them within the retailer
cheese$ROW <- ave(seq_len(nrow(cheese)), cheese$RETAILER, FUN = seq_along)
write(cheese[, c("ROW", "RETAILER", "VOLUME", "DISP", "PRICE")], "cheese")

data(orangeJuice, package = "bayesm")
write(orangeJuice$yx, "orangeJuice")
write(orangeJuice$storedemo, "orangeJuice_storedemo")
cat(sprintf("bayesm %s\n", as.character(packageVersion("bayesm"))))
