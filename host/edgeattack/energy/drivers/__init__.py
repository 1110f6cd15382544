"""One module per energy meter, named as the meter (CONVENTIONS "Names"); each registers its class."""
