"""mux: several QEMU personas sharing one keyboard, mouse, screen and keyboard LEDs."""

__version__ = "0.1.0"
