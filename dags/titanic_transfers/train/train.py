"""Train on the two Titanic halves the transfers landed (CSV files from Blob, Parquet from PostgreSQL) and score
every passenger; the scores go back to PostgreSQL through the pipeline's last DataTransferStep."""

import argparse
import os

import pandas as pd
from azureml.core import Run
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--blob_part", help="folder of CSV files copied from Blob")
parser.add_argument("--pg_part", help="Parquet file exported from PostgreSQL")
parser.add_argument("--scores", help="output folder")
args = parser.parse_args()

csvs = sorted(os.path.join(d, f) for d, _, names in os.walk(args.blob_part) for f in names if f.endswith(".csv"))
first = pd.concat([pd.read_csv(path) for path in csvs], ignore_index=True)
second = pd.read_parquet(args.pg_part)
passengers = pd.concat([first, second[first.columns]], ignore_index=True)

features = pd.DataFrame({
    "pclass": passengers["Pclass"].astype(float),
    "female": (passengers["Sex"] == "female").astype(float),
    "age": passengers["Age"].astype(float).fillna(passengers["Age"].astype(float).median()),
    "fare": passengers["Fare"].astype(float).fillna(0.0),
})
model = LogisticRegression(max_iter=1000).fit(features, passengers["Survived"].astype(int))
accuracy = float(model.score(features, passengers["Survived"].astype(int)))

scores = pd.DataFrame({"passenger_id": passengers["PassengerId"].astype("int64"),
                       "survival_probability": model.predict_proba(features)[:, 1]})
os.makedirs(args.scores, exist_ok=True)
scores.to_parquet(os.path.join(args.scores, "scores.parquet"), index=False)

run = Run.get_context()
run.log("rows", len(passengers))
run.log("accuracy", accuracy)
print(f"trained on {len(first)} rows from Blob and {len(second)} from PostgreSQL: accuracy {accuracy:.3f}")
