# Split the iris file (downloaded) into a train and a test table for the Databricks step and the models.
import argparse
import glob
import os

import pandas as pd

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()

path = args.input if os.path.isfile(args.input) else glob.glob(os.path.join(args.input, "**", "*.csv"), recursive=True)[0]
iris = pd.read_csv(path)
test = iris.sample(frac=0.3, random_state=7)
train = iris.drop(test.index)
os.makedirs(args.output, exist_ok=True)
train.to_csv(os.path.join(args.output, "train.csv"), index=False)
test.to_csv(os.path.join(args.output, "test.csv"), index=False)
print(f"extracted {len(train)} training rows and {len(test)} test rows -> {args.output}")
