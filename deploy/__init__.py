"""What runs hookswitch beyond one process: the cluster's SIP edge (kamailio/) and the
local cluster of ``make cluster`` (cluster.py)."""
