"""Which validation metric a model is selected on (Protocol.selection_metric): a model that
reads no item content is selected on a /cold metric without its group."""
import pytest

from mmbench.protocol import Protocol
from mmbench.runner import ModelSpec


@pytest.mark.parametrize("main,model,want", [
    ("ndcg@20/cold", "bpr", "ndcg@20"),  # ID-only: the group cannot tell its epochs apart
    ("ndcg@20/cold", "pop", "ndcg@20"),
    ("ndcg@20/cold", "vbpr", "ndcg@20/cold"),  # reads content: selected on the cold items
    ("ndcg@20/cold", "itemknn-cbf", "ndcg@20/cold"),
    ("ndcg@20/tail", "bpr", "ndcg@20/tail"),  # only the cold group is dropped
    ("ndcg@10", "bpr", "ndcg@10"),
    ("rmse", "bpr", "recall@10"),  # a ranking model on a rating track: the first ranking metric
])
def test_selection_metric(main, model, want):
    metrics = ("recall@10", "ndcg@20") if main == "rmse" else ()
    protocol = Protocol(metrics=metrics, main_metric=main, rating_metrics=("rmse",) if main == "rmse" else ())
    assert protocol.selection_metric(ModelSpec.resolve(model).cls) == want
