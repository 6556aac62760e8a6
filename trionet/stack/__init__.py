"""The sans-IO interface layer: demultiplexes frames to ARP, NDP, ICMP, UDP and TCP."""
