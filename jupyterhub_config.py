# The one hub configuration of aiinfn-hub: for the local platform (`aiinfn-dev dev`) and, loaded
# by the Zero-to-JupyterHub chart, for a cluster. Everything that differs between the two comes
# from environment variables, listed in aiinfn_hub/hub_environment.py; a bad platform
# configuration stops the hub with the path of the bad key.
from aiinfn_hub.hub_environment import configure_from_environment

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
configure_from_environment(c)
