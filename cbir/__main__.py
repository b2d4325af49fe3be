from cbir.cli import main

# Guarded: processes spawned by this one (a Dask LocalCluster's workers) import this module again.
if __name__ == "__main__":
    main()
