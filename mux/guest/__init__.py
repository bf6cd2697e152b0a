"""Guests: one QEMU process per persona, its accelerator, serial log and VNC link."""
