"""Engine: the BoT training recipe (``engine.train``) and batched feature
extraction (``engine.extract``). Import from the submodules."""
