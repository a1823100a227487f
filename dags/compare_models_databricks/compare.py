# Compare the two models and write the winner; --param1 is the pipeline parameter "pipeline_arg".
import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--comp_data1", required=True)
parser.add_argument("--comp_data2", required=True)
parser.add_argument("--output_data", required=True)
parser.add_argument("--param1", type=int, required=True)
args = parser.parse_args()

a = json.load(open(os.path.join(args.comp_data1, "score.json")))
b = json.load(open(os.path.join(args.comp_data2, "score.json")))
best = max((a, b), key=lambda s: s["accuracy"])
os.makedirs(args.output_data, exist_ok=True)
json.dump({"best": best, "candidates": [a, b], "pipeline_arg": args.param1},
          open(os.path.join(args.output_data, "comparison.json"), "w"), indent=1)
run = Run.get_context()
run.log("best_accuracy", best["accuracy"])
run.log("pipeline_arg", args.param1)
print(f"best model: {best['model']} ({best['accuracy']:.3f}); pipeline_arg={args.param1}")
