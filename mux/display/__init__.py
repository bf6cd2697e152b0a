"""Display: per-persona pictures and LEDs, layouts, and the headless and window outputs."""
