"""What the clients learn from: datasets, their split over clients, and the tasks built on them.

- :mod:`federated.data.tasks`: the task interface the round loop uses (each client's batches, the
  test metric) and :func:`~federated.data.tasks.build_task`;
- :mod:`federated.data.datasets`: the offline datasets (MNIST-1D, digits), each client's minibatch
  stream;
- :mod:`federated.data.partitions`: how the training data is split over the clients (IID, Dirichlet,
  shards, quantity skew; contiguous slices of a token stream);
- :mod:`federated.data.cifar`, :mod:`federated.data.text`: CIFAR-10/100 and the text corpora
  (WikiText-103, the standard library's pydoc texts), with :mod:`federated.data.archives` to
  download and unpack them safely;
- :mod:`federated.data.errors`: :class:`~federated.data.errors.DataError`.

Importing this package loads nothing heavy; import the module you need.
"""
