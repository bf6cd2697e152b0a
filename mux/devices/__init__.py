"""Devices: the device model and hot-plugging devices between personas."""
