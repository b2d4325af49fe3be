"""Standard benchmark sets: the catalog, resumable downloads, safe unpacking, verified installs.

``catalog``     the known sets (URLs, layout, protocol, licence) and where fetched sets live
``download``    resumable HTTP(S) (Range) and FTP (REST) downloads
``archives``    tar / tar.gz / zip unpacking that refuses traversal, links out, devices and bombs
``install``     fetch = obtain archives, check, unpack, verify, write the manifest, rename into place
``local_sets``  sets built on this machine (skimage-dup)
"""

from cbir.fetch.catalog import DATASETS, find_dataset, resolve_dataset
from cbir.fetch.install import FetchReport, fetch_dataset

__all__ = ["DATASETS", "FetchReport", "fetch_dataset", "find_dataset", "resolve_dataset"]
