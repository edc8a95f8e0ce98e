"""kubectl's merge of kubeconfig files, read once for the CLI and the client
(canary/kube/kubeconfig.py). Covers: the first file that names an entry or sets the current
context wins; relative certificate and token paths are taken from the file that holds them;
--kubeconfig must exist; missing files of $KUBECONFIG are skipped; YAML and shape errors in
one sentence naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from canary.kube.kubeconfig import KubeconfigError, kubeconfig_files, merge


def write(path: Path, document: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_first_file_that_names_an_entry_wins(tmp_path: Path) -> None:
    first = write(
        tmp_path / "first",
        {
            "contexts": [{"name": "a", "context": {"cluster": "c", "namespace": "shop"}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://first"}}],
        },
    )
    second = write(
        tmp_path / "second",
        {
            "current-context": "a",
            "contexts": [{"name": "a", "context": {"namespace": "other"}}],
            "clusters": [
                {"name": "c", "cluster": {"server": "https://second"}},
                {"name": "d", "cluster": {"server": "https://d"}},
            ],
            "users": [{"name": "u", "user": {"token": "t"}}],
        },
    )

    merged = merge([first, second])

    assert merged.current_context == "a"
    assert merged.contexts() == {"a": {"cluster": "c", "namespace": "shop"}}
    assert [c["cluster"]["server"] for c in merged.document["clusters"]] == [
        "https://first",
        "https://d",
    ]
    assert merged.document["users"] == [{"name": "u", "user": {"token": "t"}}]


def test_relative_files_are_taken_from_the_kubeconfig_that_names_them(tmp_path: Path) -> None:
    path = write(
        tmp_path / "conf" / "config",
        {
            "clusters": [{"name": "c", "cluster": {"certificate-authority": "pki/ca.crt"}}],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "client-certificate": "pki/u.crt",
                        "client-key": "/etc/u.key",
                        "tokenFile": "token",
                        "username": "relative-looking",
                    },
                }
            ],
        },
    )

    merged = merge([path])

    conf = tmp_path / "conf"
    assert merged.document["clusters"][0]["cluster"]["certificate-authority"] == str(
        conf / "pki/ca.crt"
    )
    assert merged.document["users"][0]["user"] == {
        "client-certificate": str(conf / "pki/u.crt"),
        "client-key": "/etc/u.key",
        "tokenFile": str(conf / "token"),
        "username": "relative-looking",
    }


def test_an_explicit_kubeconfig_must_exist(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="does not exist: check --kubeconfig"):
        kubeconfig_files(str(tmp_path / "nope"))


def test_missing_files_of_the_kubeconfig_variable_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = write(tmp_path / "present", {})
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{present}")
    assert kubeconfig_files(None) == [present]


@pytest.mark.parametrize(
    ("content", "message"),
    [("clusters: [", "is not valid YAML"), ("- a list", "is not a kubeconfig")],
)
def test_a_broken_file_is_one_sentence_naming_it(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    with pytest.raises(KubeconfigError, match=message) as caught:
        merge([path])
    assert str(path) in str(caught.value)
