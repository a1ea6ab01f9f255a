def write_detection(*a, **k): raise NotImplementedError
