# Step 1 of the iris pipeline: read the registered tabular dataset, write clean train/test splits.
import argparse
import os

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--output", required=True)
parser.add_argument("--test_fraction", type=float, default=0.2)
args = parser.parse_args()

run = Run.get_context()
iris = run.input_datasets["iris_data"].to_pandas_dataframe()
print(f"read {len(iris)} rows, columns {list(iris.columns)}")

iris = iris.dropna()
test = iris.sample(frac=args.test_fraction, random_state=42)
train = iris.drop(test.index)
os.makedirs(args.output, exist_ok=True)
train.to_csv(os.path.join(args.output, "train.csv"), index=False)
test.to_csv(os.path.join(args.output, "test.csv"), index=False)
run.log("rows_train", len(train))
run.log("rows_test", len(test))
