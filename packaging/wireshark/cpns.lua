-- SPDX-License-Identifier: Apache-2.0
--
-- Wireshark dissector for cpns/1, the wire protocol of CPNS Simplified Group
-- Key management (docs/PROTOCOL.md): the framing of section 2 and the seven
-- messages of section 3.
--
-- A frame is a 4-byte big-endian length N (1 .. 65536) and N bytes of one
-- XML document. Frames are reassembled across TCP segments, several frames in
-- one segment are each dissected. For every message the tree shows its name,
-- Version, TransactionID, SGID, PNEID, PNID, PNGWID, KeyVersion, Return,
-- Status and Time, each highlighting its bytes, and the Info column sums it
-- up; the whole document follows, dissected by Wireshark's XML dissector.
-- Nothing is decoded: EncryptedGroupKey, Proof, Nonce and KeyConfirmation are
-- shown only by the XML dissector, as the base64 they are on the wire (the
-- Group Key is encrypted end to end; no key ever travels in clear).
--
-- Registered on the daemons' plain-TCP default ports: 7460 (PN GW -> CPNS
-- Server, with cpns-server --insecure) and 7461 (PNE -> PN GW), changeable in
-- the preference cpns.tcp_ports; "Decode As... CPNS" works on any TCP port; a
-- heuristic recognises a connection on another port from its first frame
-- (cpns.heuristic, on by default). TLS links (the server's default) need the
-- TLS keys and "Decode As" of the TLS payload to show anything.
--
-- Install: copy to the global Lua plugin folder (Debian:
-- /usr/lib/<multiarch>/wireshark/plugins, where `make install` with
-- CMAKE_INSTALL_PREFIX=/usr puts it) or ~/.local/lib/wireshark/plugins, or
-- try it with `tshark -X lua_script:cpns.lua -r capture.pcap -V`.

local FRAME_HDR = 4
local FRAME_MAX = 65536

local cpns = Proto("cpns", "CPNS Simplified Group Key management (cpns/1)")

-- PROTOCOL.md section 3.2
local return_names = {
    [0] = "other failure",
    [1] = "success",
    [2] = "decryption or integrity failure",
    [3] = "secure storage failure",
    [4] = "malformed message",
    [5] = "not addressed to this entity",
    [6] = "PNE not reachable",
    [7] = "stale key version",
    [8] = "authentication failed",
    [9] = "unknown entity",
}

local f = {
    length = ProtoField.uint32("cpns.length", "Length", base.DEC),
    message = ProtoField.string("cpns.message", "Message"),
    version = ProtoField.string("cpns.version", "Version"),
    tid = ProtoField.uint64("cpns.tid", "TransactionID", base.DEC),
    sgid = ProtoField.string("cpns.sgid", "SGID"),
    pneid = ProtoField.string("cpns.pneid", "PNEID"),
    pnid = ProtoField.string("cpns.pnid", "PNID"),
    pngwid = ProtoField.string("cpns.pngwid", "PNGWID"),
    keyversion = ProtoField.uint32("cpns.keyversion", "KeyVersion", base.DEC),
    ret = ProtoField.uint32("cpns.return", "Return", base.DEC, return_names),
    status = ProtoField.string("cpns.status", "Status"),
    time = ProtoField.string("cpns.time", "Time"),
}
cpns.fields = { f.length, f.message, f.version, f.tid, f.sgid, f.pneid, f.pnid, f.pngwid,
                f.keyversion, f.ret, f.status, f.time }

local ef = {
    bad_length = ProtoExpert.new("cpns.bad_length", "Frame length outside 1..65536",
                                 expert.group.MALFORMED, expert.severity.ERROR),
    not_cpns = ProtoExpert.new("cpns.not_cpns", "Not a CPNSMessage document",
                               expert.group.MALFORMED, expert.severity.WARN),
    bad_number = ProtoExpert.new("cpns.bad_number", "Not a decimal number in range",
                                 expert.group.MALFORMED, expert.severity.WARN),
    failure = ProtoExpert.new("cpns.failure", "Return is not 1 (success)",
                              expert.group.RESPONSE_CODE, expert.severity.NOTE),
}
cpns.experts = { ef.bad_length, ef.not_cpns, ef.bad_number, ef.failure }

local default_ports = "7460,7461"
cpns.prefs.tcp_ports = Pref.range("TCP ports", default_ports,
                                  "TCP ports of plain cpns/1 links (server 7460, PN GW 7461)",
                                  65535)
cpns.prefs.heuristic = Pref.bool("Find cpns/1 on other ports", true,
                                 "Recognise a cpns/1 connection on any TCP port by its first frame")

local xml = Dissector.get("xml")

-- The attributes of the start tag s[from..to] (a Lua string, 1-based), as
-- name -> { value, offset (0-based, in s), length }. Values are shown raw:
-- identifiers and numbers of cpns/1 never hold an entity reference.
local function attributes(s, from, to)
    local attrs = {}
    local pos = from
    while true do
        local a, b, name, quote = s:find("([%w_:%.%-]+)%s*=%s*([\"'])", pos)
        if not a or b > to then
            break
        end
        local c = s:find(quote, b + 1, true)
        if not c or c > to then
            break
        end
        local local_name = name:match(":([^:]+)$") or name
        attrs[local_name] = { value = s:sub(b + 1, c - 1), offset = b, length = c - b - 1 }
        pos = c + 1
    end
    return attrs
end

-- The first start tag at or after pos (skipping the XML declaration,
-- comments and closing tags): its local name, where its attributes begin and
-- end (1-based, in s), and the position after it.
local function next_start_tag(s, pos)
    while true do
        local a = s:find("<", pos, true)
        if not a then
            return nil
        end
        local lead = s:sub(a + 1, a + 1)
        if lead == "?" or lead == "!" or lead == "/" then
            local close = (s:sub(a, a + 3) == "<!--") and s:find("-->", a + 4, true) or
                          s:find(">", a + 1, true)
            if not close then
                return nil
            end
            pos = close + 1
        else
            local name_end = s:find("[%s/>]", a + 1)
            local gt = s:find(">", a + 1, true)
            if not name_end or not gt then
                return nil
            end
            local qname = s:sub(a + 1, name_end - 1)
            return qname:match(":([^:]+)$") or qname, name_end, gt - 1, gt + 1
        end
    end
end

-- A decimal number as PROTOCOL.md section 3 writes it: digits, no sign, no
-- leading zero. Returned as a UInt64, or nil.
local function decimal(str)
    if not str:match("^[1-9]%d*$") or #str > 19 then
        return nil
    end
    local v = UInt64(0)
    for i = 1, #str do
        v = v * 10 + (str:byte(i) - 48)
    end
    return v
end

-- Adds the attribute `name` of attrs to the tree, highlighting its value.
local function add_attr(tree, field, payload, attrs, name, kind, limit)
    local a = attrs[name]
    if not a then
        return nil
    end
    local range = payload(a.offset, a.length)
    if kind == "string" then
        tree:add(field, range, a.value)
        return a.value
    end
    local v = decimal(a.value)
    if not v or (limit and v > UInt64(limit)) then
        tree:add(field, range):add_proto_expert_info(ef.bad_number)
        return nil
    end
    if kind == "uint64" then
        tree:add(field, range, v)
    else
        tree:add(field, range, v:tonumber())
    end
    return a.value
end

-- One frame: header and payload (tvb holds exactly the frame).
local function dissect_frame(tvb, pinfo, root)
    local n = tvb(0, FRAME_HDR):uint()
    local payload = tvb(FRAME_HDR, n):tvb()
    local s = payload:raw()
    local tree = root:add(cpns, tvb(), "cpns/1")
    tree:add(f.length, tvb(0, FRAME_HDR))

    local root_name, root_from, root_to, after_root = next_start_tag(s, 1)
    local msg_name, msg_from, msg_to, after_msg
    if root_name == "CPNSMessage" then
        msg_name, msg_from, msg_to, after_msg = next_start_tag(s, after_root)
    end
    if not msg_name then
        tree:add_proto_expert_info(ef.not_cpns)
        tree:append_text(", not a CPNSMessage")
        xml:call(payload, pinfo, tree)
        return "malformed"
    end

    local top = attributes(s, root_from, root_to)
    local msg = attributes(s, msg_from, msg_to)
    -- SGroupKeyDeliveryRequest carries PNEID and KeyVersion in its GroupKeyInfo child.
    local child = {}
    if msg_name == "SGroupKeyDeliveryRequest" then
        local c_name, c_from, c_to = next_start_tag(s, after_msg)
        if c_name == "GroupKeyInfo" then
            child = attributes(s, c_from, c_to)
        end
    end
    local function pick(name)
        return msg[name] and msg or (child[name] and child or msg)
    end

    local name_off = msg_from - 1 - #msg_name
    tree:add(f.message, payload(name_off, #msg_name), msg_name)
    tree:append_text(", " .. msg_name)
    add_attr(tree, f.version, payload, top, "Version", "string")
    local info = { msg_name }
    local tid = add_attr(tree, f.tid, payload, top, "TransactionID", "uint64", nil)
    if tid then
        info[#info + 1] = "TID=" .. tid
        tree:append_text(", TID " .. tid)
    end
    local shown = {
        { "SGID", f.sgid, "string" }, { "PNEID", f.pneid, "string" },
        { "PNID", f.pnid, "string" }, { "PNGWID", f.pngwid, "string" },
        { "KeyVersion", f.keyversion, "uint32", 4294967295 },
        { "Return", f.ret, "uint32", 4294967295 },
        { "Status", f.status, "string" }, { "Time", f.time, "string" },
    }
    for _, d in ipairs(shown) do
        local name = d[1]
        local v = add_attr(tree, d[2], payload, pick(name), name, d[3], d[4])
        if v and name ~= "Time" then
            info[#info + 1] = name .. "=" .. v
        end
        if name == "Return" and v and v ~= "1" then
            local r = tonumber(v)
            tree:add_proto_expert_info(ef.failure, "Return " .. v .. " (" ..
                                       (return_names[r] or "unknown: read as 0") .. ")")
        end
    end
    xml:call(payload, pinfo, tree)
    return table.concat(info, " ")
end

-- Every complete frame of tvb; asks TCP for more bytes when the last one is
-- cut (PROTOCOL.md section 2: the length prefix says how many).
local function dissect(tvb, pinfo, tree)
    local total = tvb:len()
    local offset = 0
    local infos = {}
    while offset < total do
        local avail = total - offset
        if avail < FRAME_HDR then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        local n = tvb(offset, FRAME_HDR):uint()
        if n < 1 or n > FRAME_MAX then
            -- The peer closes the connection on such a frame; nothing after it is framed.
            local t = tree:add(cpns, tvb(offset), "cpns/1, bad frame")
            t:add(f.length, tvb(offset, FRAME_HDR)):add_proto_expert_info(ef.bad_length)
            infos[#infos + 1] = "bad frame length " .. n
            offset = total
            break
        end
        if avail < FRAME_HDR + n then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = FRAME_HDR + n - avail
            break
        end
        infos[#infos + 1] = dissect_frame(tvb(offset, FRAME_HDR + n):tvb(), pinfo, tree)
        offset = offset + FRAME_HDR + n
    end
    if #infos > 0 then
        pinfo.cols.protocol = "CPNS"
        pinfo.cols.info = table.concat(infos, ", ")
    end
    return total
end

function cpns.dissector(tvb, pinfo, tree)
    return dissect(tvb, pinfo, tree)
end

-- A connection's first segment: a plausible length and the start of an XML
-- document naming the cpns/1 root (or its namespace) in the bytes at hand.
local function heuristic(tvb, pinfo, tree)
    if not cpns.prefs.heuristic or tvb:len() < FRAME_HDR + 5 then
        return false
    end
    local n = tvb(0, FRAME_HDR):uint()
    if n < 1 or n > FRAME_MAX then
        return false
    end
    local head = tvb(FRAME_HDR, math.min(n, tvb:len() - FRAME_HDR, 256)):raw()
    if not head:match("^%s*<") or not (head:find("CPNSMessage", 1, true) or
                                       head:find("urn:oma:xml:cpns:message", 1, true)) then
        return false
    end
    pinfo.conversation = cpns
    dissect(tvb, pinfo, tree)
    return true
end
cpns:register_heuristic("tcp", heuristic)

local tcp_port = DissectorTable.get("tcp.port")
local registered = ""
local function register_ports()
    local ports = tostring(cpns.prefs.tcp_ports)
    if ports == registered then
        return
    end
    if registered ~= "" then
        tcp_port:remove(registered, cpns)
    end
    if ports ~= "" then
        tcp_port:add(ports, cpns)
    end
    registered = ports
end
cpns.prefs_changed = register_ports
register_ports()
