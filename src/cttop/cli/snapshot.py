"""`cttop snapshot`: placeholder registration until the engine lands."""
