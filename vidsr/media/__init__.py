"""PyAV in and out: probing, demux + decode to planes, encode + mux from planes."""
