"""r1jax: the DeepSeek-R1 recipe (R1-Zero, R1, distillation) in JAX."""

import setuptools

setuptools.setup(
    name="r1jax",
    version="0.1.0",
    description="DeepSeek-R1 (GRPO, R1-Zero, R1, distillation) in JAX, CPU demo to TPU pod.",
    packages=setuptools.find_packages(include=["r1jax", "r1jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "tensorflow-datasets>=4.9.7",
        "array_record>=0.5",
        "importlib_resources",  # needed by tensorflow-datasets, which does not declare it
        "sentencepiece>=0.2",
        "sympy>=1.12",
        "absl-py>=2.0",
        "ml-collections>=0.1.1",
        "numpy",
        "ml_dtypes",
        "tokenizers>=0.20",  # tokenizer.json of imported HF models
        "jinja2>=3.1",  # chat templates of imported HF models
        "matplotlib",
        "tensorboardX",
        "safetensors",
        "tqdm",
    ],
    extras_require={
        # nbclient/nbformat/ipykernel: tests/test_colabs.py runs the notebooks in colabs/.
        "test": ["pytest>=8", "pytest-xdist", "nbclient", "nbformat", "ipykernel"],
        # Parity tests against Hugging Face; `pip install torch==2.13.0` takes the CPU build.
        "hf": ["torch==2.13.0", "transformers", "tokenizers"],
    },
)
