"""A device's LUT on the search side: requesting, pulling and caching it from the server, and the latency table
the search differentiates through. The LUT's sum for one architecture is `fbnet_core.predict`."""
