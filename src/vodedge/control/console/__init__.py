"""The web console on the admin listener: a browser client of the API's actions."""
