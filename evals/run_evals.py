"""Run the evaluation from a checkout: the same as `policyqa eval`, for people who prefer a script.

Run: .venv/bin/python evals/run_evals.py --split test --out evals/reports/test
"""

from policyqa.cli import app

if __name__ == "__main__":
    app(["eval", *__import__("sys").argv[1:]])
