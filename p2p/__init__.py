"""MedSwarm's libp2p transport: identity, gossip announcements, update transfer and the wire codec.

Public API (see /work/interfaces.md):

- :mod:`p2p.codec`: ``encode_update``, ``decode_update``, ``digest``, ``CodecError`` and its named subclasses
- :mod:`p2p.flatjson`: ``parse_flat_object``, ``FlatJSONError``
- :mod:`p2p.announce`: ``Announcement``, ``AnnouncementError``, ``KINDS``
- :mod:`p2p.host`: ``SwarmHost``, ``HostConfig``, ``peer_id_for_key_file`` and the ``FetchError`` family

Everything network-facing runs on trio; asyncio is not used.
"""
