package ovf

import "encoding/xml"

// The XML types below marshal an OVF 1.0 envelope with the namespace
// prefixes vSphere itself exports (ovf:, rasd:, vssd:, vmw:). encoding/xml
// writes a prefixed name in a tag literally, which is what we want for
// output; reading goes through govmomi's parser in the tests.

// Namespaces of an OVF 1.0 envelope.
const (
	nsOVF  = "http://schemas.dmtf.org/ovf/envelope/1"
	nsCIM  = "http://schemas.dmtf.org/wbem/wscim/1/common"
	nsRASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
	nsVSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
	nsVMW  = "http://www.vmware.com/schema/ovf"
	nsXSI  = "http://www.w3.org/2001/XMLSchema-instance"

	// FormatStreamOptimized is the ovf:format of a streamOptimized VMDK.
	FormatStreamOptimized = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
)

type envelope struct {
	XMLName   xml.Name `xml:"Envelope"`
	XMLNS     string   `xml:"xmlns,attr"`
	XMLNSCIM  string   `xml:"xmlns:cim,attr"`
	XMLNSOVF  string   `xml:"xmlns:ovf,attr"`
	XMLNSRASD string   `xml:"xmlns:rasd,attr"`
	XMLNSVMW  string   `xml:"xmlns:vmw,attr"`
	XMLNSVSSD string   `xml:"xmlns:vssd,attr"`
	XMLNSXSI  string   `xml:"xmlns:xsi,attr"`

	References    references    `xml:"References"`
	DiskSection   diskSection   `xml:"DiskSection"`
	Network       network       `xml:"NetworkSection"`
	VirtualSystem virtualSystem `xml:"VirtualSystem"`
}

type references struct {
	Files []fileRef `xml:"File"`
}

type fileRef struct {
	Href string `xml:"ovf:href,attr"`
	ID   string `xml:"ovf:id,attr"`
	Size int64  `xml:"ovf:size,attr"`
}

type diskSection struct {
	Info  string     `xml:"Info"`
	Disks []diskDesc `xml:"Disk"`
}

type diskDesc struct {
	Capacity      int64  `xml:"ovf:capacity,attr"`
	CapacityUnits string `xml:"ovf:capacityAllocationUnits,attr"`
	DiskID        string `xml:"ovf:diskId,attr"`
	FileRef       string `xml:"ovf:fileRef,attr"`
	Format        string `xml:"ovf:format,attr"`
	PopulatedSize int64  `xml:"ovf:populatedSize,attr,omitempty"`
}

type network struct {
	Info     string    `xml:"Info"`
	Networks []netDesc `xml:"Network"`
}

type netDesc struct {
	Name        string `xml:"ovf:name,attr"`
	Description string `xml:"Description"`
}

type virtualSystem struct {
	ID       string          `xml:"ovf:id,attr"`
	Info     string          `xml:"Info"`
	Name     string          `xml:"Name"`
	OS       operatingSystem `xml:"OperatingSystemSection"`
	Hardware hardwareSection `xml:"VirtualHardwareSection"`
	Annotate *annotation     `xml:"AnnotationSection,omitempty"`
	Product  productSection  `xml:"ProductSection"`
}

type annotation struct {
	Info       string `xml:"Info"`
	Annotation string `xml:"Annotation"`
}

type operatingSystem struct {
	ID     int    `xml:"ovf:id,attr"`
	OSType string `xml:"vmw:osType,attr"`
	Info   string `xml:"Info"`
}

type hardwareSection struct {
	Transport string      `xml:"ovf:transport,attr,omitempty"`
	Info      string      `xml:"Info"`
	System    system      `xml:"System"`
	Items     []item      `xml:"Item"`
	Config    []vmwConfig `xml:"vmw:Config"`
}

// system holds the vssd elements in the schema's (alphabetical) order.
type system struct {
	ElementName             string `xml:"vssd:ElementName"`
	InstanceID              int    `xml:"vssd:InstanceID"`
	VirtualSystemIdentifier string `xml:"vssd:VirtualSystemIdentifier"`
	VirtualSystemType       string `xml:"vssd:VirtualSystemType"`
}

// item is a CIM_ResourceAllocationSettingData; its elements must stay in
// the schema's alphabetical order, which strict validators (ovftool) check.
type item struct {
	Address             string      `xml:"rasd:Address,omitempty"`
	AddressOnParent     string      `xml:"rasd:AddressOnParent,omitempty"`
	AllocationUnits     string      `xml:"rasd:AllocationUnits,omitempty"`
	AutomaticAllocation *bool       `xml:"rasd:AutomaticAllocation,omitempty"`
	Connection          string      `xml:"rasd:Connection,omitempty"`
	Description         string      `xml:"rasd:Description,omitempty"`
	ElementName         string      `xml:"rasd:ElementName"`
	HostResource        string      `xml:"rasd:HostResource,omitempty"`
	InstanceID          int         `xml:"rasd:InstanceID"`
	Parent              int         `xml:"rasd:Parent,omitempty"`
	ResourceSubType     string      `xml:"rasd:ResourceSubType,omitempty"`
	ResourceType        int         `xml:"rasd:ResourceType"`
	VirtualQuantity     int64       `xml:"rasd:VirtualQuantity,omitempty"`
	Config              []vmwConfig `xml:"vmw:Config"`
}

type vmwConfig struct {
	Required bool   `xml:"ovf:required,attr"`
	Key      string `xml:"vmw:key,attr"`
	Value    string `xml:"vmw:value,attr"`
}

type productSection struct {
	Required    bool   `xml:"ovf:required,attr"`
	Info        string `xml:"Info"`
	Product     string `xml:"Product"`
	Vendor      string `xml:"Vendor"`
	Version     string `xml:"Version"`
	FullVersion string `xml:"FullVersion"`
	ProductURL  string `xml:"ProductUrl,omitempty"`
	Entries     []any  // Category and Property elements, in order
}

type category struct {
	XMLName xml.Name `xml:"Category"`
	Text    string   `xml:",chardata"`
}

type property struct {
	XMLName          xml.Name `xml:"Property"`
	Key              string   `xml:"ovf:key,attr"`
	Type             string   `xml:"ovf:type,attr"`
	Password         bool     `xml:"ovf:password,attr,omitempty"`
	Qualifiers       string   `xml:"ovf:qualifiers,attr,omitempty"`
	UserConfigurable bool     `xml:"ovf:userConfigurable,attr"`
	Value            string   `xml:"ovf:value,attr"`
	Label            string   `xml:"Label"`
	Description      string   `xml:"Description"`
}

// CIM resource types used in the hardware section.
const (
	rtProcessor       = 3
	rtMemory          = 4
	rtIDEController   = 5
	rtSCSIController  = 6
	rtEthernetAdapter = 10
	rtCDDrive         = 15
	rtDiskDrive       = 17
)
