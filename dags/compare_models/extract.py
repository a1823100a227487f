# Split the scores of the two models into one output each.
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--comp_data1", required=True)
parser.add_argument("--comp_data2", required=True)
args = parser.parse_args()

scores = json.load(open(os.path.join(args.input, "scores.json")))
for (name, score), out in zip(sorted(scores.items()), (args.comp_data1, args.comp_data2), strict=True):
    os.makedirs(out, exist_ok=True)
    json.dump({"model": name, "accuracy": score}, open(os.path.join(out, "score.json"), "w"))
    print(f"{name}: {score:.3f} -> {out}")
