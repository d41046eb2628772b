"""Data: dataset readers (records, utkface, readers), the crop cache (cache, prepare), person-level
folds (split) and the data report (eda, eda_rows, eda_page)."""
