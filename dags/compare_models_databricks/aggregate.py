# Databricks notebook source
# ruff: noqa: F821, E402  (Databricks provides spark and dbutils; every cell has its imports)
# Aggregate the extracted training rows with Spark: per species, the row count and the mean of every feature.
# Inputs and outputs arrive as widgets named after them; "myparam" is the step's notebook_params.
import os

extracted = dbutils.widgets.get("extracted")
aggregated = dbutils.widgets.get("aggregated")
myparam = dbutils.widgets.get("myparam")
print(f"aggregating {extracted} (myparam={myparam})")

# COMMAND ----------

from pyspark.sql import functions as F

rows = spark.read.csv(os.path.join(extracted, "train.csv"), header=True, inferSchema=True)
features = [c for c in rows.columns if c != "species"]
means = (rows.groupBy("species")
         .agg(F.count("*").alias("count"), *[F.avg(c).alias(c) for c in features])
         .orderBy("species"))
means.show()

# COMMAND ----------

os.makedirs(aggregated, exist_ok=True)
means.toPandas().to_csv(os.path.join(aggregated, "species_means.csv"), index=False)
dbutils.notebook.exit(f"{means.count()} species from {rows.count()} rows")
