package standin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/osquery/osquery-go/gen/osquery"
)

// managerHandler implements osqueryd's side of the ExtensionManager service.
type managerHandler struct{ m *Manager }

var okStatus = &osquery.ExtensionStatus{Code: 0, Message: "OK"}

func failed(msg string) *osquery.ExtensionStatus {
	return &osquery.ExtensionStatus{Code: 1, Message: msg}
}

func (h managerHandler) Ping(context.Context) (*osquery.ExtensionStatus, error) {
	return okStatus, nil
}

func (h managerHandler) Call(context.Context, string, string, osquery.ExtensionPluginRequest) (*osquery.ExtensionResponse, error) {
	return &osquery.ExtensionResponse{Status: failed("the stand-in does not route calls")}, nil
}

func (h managerHandler) Shutdown(context.Context) error { return nil }

func (h managerHandler) Extensions(context.Context) (osquery.InternalExtensionList, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	list := osquery.InternalExtensionList{}
	for uuid, e := range h.m.extensions {
		info := e.Info
		list[uuid] = &info
	}
	return list, nil
}

func (h managerHandler) Options(context.Context) (osquery.InternalOptionList, error) {
	return osquery.InternalOptionList{}, nil
}

// RegisterExtension follows osqueryd: a duplicate name is refused first,
// then a registry item that already exists (core table or another
// extension's) fails the whole registration.
func (h managerHandler) RegisterExtension(_ context.Context, info *osquery.InternalExtensionInfo, registry osquery.ExtensionRegistry) (*osquery.ExtensionStatus, error) {
	m := h.m
	m.mu.Lock()
	onRegister := m.onRegister
	m.mu.Unlock()
	if onRegister != nil {
		onRegister()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if info == nil {
		return nil, errors.New("registerExtension without info")
	}
	for _, e := range m.extensions {
		if e.Info.Name == info.Name {
			m.rejections[info.Name]++
			return failed(DuplicateMessage), nil
		}
	}
	for name := range registry["table"] {
		if _, taken := m.ownerLocked(name); taken || slices.Contains(m.reserved, name) {
			return failed("Failed adding registry: Duplicate registry item exists: " + name), nil
		}
	}
	m.nextUUID++
	m.extensions[m.nextUUID] = &Extension{UUID: m.nextUUID, Info: *info, Registry: registry}
	return &osquery.ExtensionStatus{Code: 0, Message: "OK", UUID: m.nextUUID}, nil
}

// ownerLocked returns the extension that registered table; m.mu is held.
func (m *Manager) ownerLocked(table string) (osquery.ExtensionRouteUUID, bool) {
	for uuid, e := range m.extensions {
		if _, ok := e.Registry["table"][table]; ok {
			return uuid, true
		}
	}
	return 0, false
}

func (h managerHandler) DeregisterExtension(_ context.Context, uuid osquery.ExtensionRouteUUID) (*osquery.ExtensionStatus, error) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if _, ok := h.m.extensions[uuid]; !ok {
		return failed(fmt.Sprintf("No extension UUID registered: %d", uuid)), nil
	}
	delete(h.m.extensions, uuid)
	return okStatus, nil
}

func (h managerHandler) Query(context.Context, string) (*osquery.ExtensionResponse, error) {
	return &osquery.ExtensionResponse{Status: failed("the stand-in runs no SQL")}, nil
}

func (h managerHandler) GetQueryColumns(context.Context, string) (*osquery.ExtensionResponse, error) {
	return &osquery.ExtensionResponse{Status: failed("the stand-in runs no SQL")}, nil
}
