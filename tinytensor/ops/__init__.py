"""The ops, by family. Each op computes its forward and defines its backward right beside it."""
