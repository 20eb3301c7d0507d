//! Wire transports: replication protocol types, relay client, UDS, loopback and LAN endpoints, discovery. (Filled by the daemon and replication work.)
