// The parts of the Docker Engine API's JSON that the source reads (GET /networks,
// GET /containers/json?all=true, GET /events). Everything is optional: podman and older
// engines leave fields out or set them to null.

export interface DockerIpamConfig {
  Subnet?: string;
  Gateway?: string;
  IPRange?: string;
}

export interface DockerNetwork {
  Id?: string;
  /** GET /networks/ID only: its endpoints by container ID (swarm's gateway endpoints appear only here). */
  Containers?: Record<string, { Name?: string; IPv4Address?: string; IPv6Address?: string }> | null;
  Name?: string;
  Scope?: string; // local | swarm | global
  Driver?: string; // bridge, overlay, macvlan, ipvlan, host, null
  Attachable?: boolean;
  /** Swarm's routing-mesh network (`ingress`). */
  Ingress?: boolean;
  Internal?: boolean;
  IPAM?: { Config?: DockerIpamConfig[] | null } | null;
  Labels?: Record<string, string> | null;
}

export interface DockerEndpointSettings {
  NetworkID?: string;
  IPAddress?: string;
  GlobalIPv6Address?: string;
  Aliases?: string[] | null;
}

/** One entry of GET /containers/json. */
export interface DockerContainer {
  Id?: string;
  Names?: string[] | null;
  Labels?: Record<string, string> | null;
  State?: string; // created, running, paused, restarting, removing, exited, dead
  Status?: string; // "Up 3 minutes (healthy)"
  NetworkSettings?: { Networks?: Record<string, DockerEndpointSettings> | null } | null;
}

export interface DockerEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> | null } | null;
}

/** One entry of GET /services (swarm managers only): what a swarm service's containers do not carry. */
export interface DockerService {
  ID?: string;
  Spec?: {
    Name?: string;
    Labels?: Record<string, string> | null;
    TaskTemplate?: { Networks?: DockerServiceNetwork[] | null } | null;
    /** Deprecated place of the same list (API < 1.25 clients). */
    Networks?: DockerServiceNetwork[] | null;
    EndpointSpec?: { Mode?: string } | null;
  } | null;
  Endpoint?: {
    Ports?: Array<{ Protocol?: string; TargetPort?: number; PublishedPort?: number; PublishMode?: string }> | null;
    VirtualIPs?: Array<{ NetworkID?: string; Addr?: string }> | null;
  } | null;
}

/** One entry of GET /tasks (swarm managers only). */
export interface DockerTask {
  ID?: string;
  DesiredState?: string;
}

export interface DockerServiceNetwork {
  /** Network ID (or name, as given at creation). */
  Target?: string;
  Aliases?: string[] | null;
}
