"""Front ends: the control socket and MQTT."""
