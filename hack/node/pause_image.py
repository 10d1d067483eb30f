#!/usr/bin/env python3
"""Write the sandbox (pause) image as an OCI archive, without a registry or buildah.

Usage: pause_image.py PAUSE_BINARY OUT.tar REF

The image has one layer holding the static ``/pause`` binary and runs it as its
entrypoint. ``ctr images import`` reads the archive; the tag comes from the index's
``org.opencontainers.image.ref.name`` annotation. Standard library only, so the node
can come up before the project's virtualenv exists.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path


def _blob(tar: tarfile.TarFile, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _layer(binary: Path) -> tuple[bytes, bytes]:
    """(gzipped layer, uncompressed layer): the binary as /pause, mode 0755, owned by root."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as layer:
        info = tarfile.TarInfo("pause")
        info.size = binary.stat().st_size
        info.mode = 0o755
        with binary.open("rb") as fh:
            layer.addfile(info, fh)
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), plain


def main(binary: Path, out: Path, ref: str) -> None:
    gz, plain = _layer(binary)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(plain).hexdigest()}"]},
    }
    with tarfile.open(out, "w") as tar:
        layer = _blob(tar, gz, "application/vnd.oci.image.layer.v1.tar+gzip")
        conf = _blob(tar, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "config": conf, "layers": [layer]}
        desc = _blob(
            tar, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
        )
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref}
        for name, data in (
            ("oci-layout", {"imageLayoutVersion": "1.0.0"}),
            ("index.json", {"schemaVersion": 2, "manifests": [desc]}),
        ):
            payload = json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: pause_image.py PAUSE_BINARY OUT.tar REF")
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
