import subprocess

import onnx
from onnx import TensorProto, helper

from training.model_history import table


def _model(meta: dict) -> onnx.ModelProto:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _commit(repo, path, meta, message):
    onnx.save(_model(meta), str(path))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-C", str(repo)]
    subprocess.run(git + ["add", path.name], check=True)
    subprocess.run(git + ["commit", "-q", "-m", message], check=True)


def test_each_commit_of_the_file_is_a_row_oldest_first_with_its_own_figures(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    path = tmp_path / "m.onnx"
    _commit(tmp_path, path, {"rin.class_accuracy": "0.4894", "rin.fd": "0.8743", "rin.fd_real": "0.1402",
                             "rin.edge_width": "9.3068", "rin.edge_width_real": "0.8388", "rin.default_guidance": "2",
                             "rin.train_steps": "4130"}, "first")
    (tmp_path / "other.txt").write_text("a commit that leaves the model alone")
    subprocess.run(["git", "-C", str(tmp_path), "add", "other.txt"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-C", str(tmp_path), "commit", "-q", "-m",
                    "other"], check=True)
    _commit(tmp_path, path, {"rin.class_accuracy": "0.6725", "rin.fd": "0.2568", "rin.fd_real": "0.1402",
                             "rin.edge_width": "7.8694", "rin.edge_width_real": "0.8388", "rin.default_guidance": "2",
                             "rin.guidance_interval": "0.4,1", "rin.default_sampler": "ddim",
                             "rin.default_steps": "20", "rin.train_steps": "59422"}, "second")

    rows = table(str(path)).splitlines()[2:]

    assert len(rows) == 2
    assert "| 4130 | 48.9 % | 0.87 (6.24x) | 9.31 (11.10x) | 2 | ddim 50 |" in rows[0]
    assert "| 59422 | 67.3 % | 0.26 (1.83x) | 7.87 (9.38x) | 2 on [0.4, 1] | ddim 20 |" in rows[1]
