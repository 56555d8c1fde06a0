// Package pki makes and loads the certificates that secure a Meridian
// cluster (see SECURITY.md), and builds the TLS configurations of its
// three kinds of connection: node to node (mutual TLS), clients to a node
// (RESP and HTTP; client certificates optional), and the CLI to a node.
//
// # Identity
//
// A certificate names what it stands for in one URI subject alternative
// name:
//
//	meridian://<cluster>/node/<id>     a node of the cluster
//	meridian://<cluster>/user/<name>   a user of the cluster (a client certificate)
//	meridian://<cluster>/ca            the cluster's certificate authority
//
// <cluster> is the cluster's name ("meridian") or its id
// ("meridian-0123456789abcdef", see node.ClusterID). A node learns who is
// talking to it from the verified certificate alone: a peer whose
// certificate does not chain to the cluster's CA bundle, names another
// cluster, or is not a node's, is refused during the TLS handshake, and
// the node id the transport attributes to a request is the one its
// certificate names (transport refuses a request whose claimed sender
// differs).
//
// # Files
//
// A certificates directory (mode 0700) holds
//
//	ca.crt                 the CA bundle: every CA certificate trusted (two during a CA rotation)
//	ca.key                 the CA's key (keep it off the nodes once their certificates exist)
//	node.crt, node.key     this node's certificate and key
//	client.<user>.crt/.key a user's client certificate and key
//
// Keys are written with mode 0600 and a key readable by group or others
// is refused when loaded. `meridian cert create-ca|create-node|create-client`
// writes them (CreateCA, CreateNode, CreateClient).
//
// # Reloading
//
// A Store holds a node's certificates and CA bundle. Reload reads the
// files again; the node calls it on SIGHUP, and Run calls it whenever a
// file's size or modification time changes. New material is tested with
// a TLS handshake between this node's new certificate and the new bundle,
// in memory, before it is swapped in; it must also name the same node and
// cluster. Material that fails is refused with a logged error and the
// old stays in use. New connections use the new material at once;
// requests on connections made before are checked against the new bundle
// (transport drops and redials its connections when the material
// changes), so after a CA is removed from the bundle its certificates are
// refused.
package pki
