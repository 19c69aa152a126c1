"""The DNAS search and what trains: the supernet and its layers, Gumbel sampling, the loss, the temperature
schedule, the search loop, data sets, multi-process runs, and training a chosen architecture from scratch."""
