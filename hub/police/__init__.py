"""The MQTT link to the police alarm platform."""
