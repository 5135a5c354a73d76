"""The certsrv double's pages, worded after what clients parse (IIS sends CRLF and tabs)."""

from __future__ import annotations

import html

_HEAD = (
    '<HTML>\r\n<Head>\r\n<Meta HTTP-Equiv="Content-Type" Content="text/html; charset=UTF-8">\r\n'
    "<Title>Microsoft Active Directory Certificate Services</Title>\r\n</Head>\r\n"
    "<Body BgColor=#FFFFFF>\r\n<Table Border=0 CellSpacing=0 CellPadding=4 Width=100%>\r\n"
    "\t<TR><TD><Font Color=#FFFFFF><LocID ID=locMSCertSrv><Font Face=Arial><B><I>Microsoft"
    "</I></B> Active Directory Certificate Services</Font></LocID> -- {ca}</Font></TD>\r\n"
    '\t<TD Align=Right><A Href="/certsrv/"><Font Color=#FFFFFF><LocID ID=locHomeAnchor>Home'
    "</LocID></Font></A></TD></TR>\r\n</Table>\r\n"
)
_TAIL = "\r\n</Body></HTML>\r\n"


def _page(ca: str, body: str) -> str:
    return _HEAD.format(ca=html.escape(ca)) + body + _TAIL


def issued_page(ca: str, request_id: int) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle><Font Face=Arial Size=-1><B>Certificate Issued</B></Font></P>\r\n"
        "<P><LocID ID=locCertIssued>The certificate you requested was issued to you."
        "</LocID></P>\r\n"
        "<Table><TR><TD><Input Type=Radio Name=rbEncoding ID=rbDerEnc checked>DER encoded"
        "</TD><TD><Input Type=Radio Name=rbEncoding ID=rbB64Enc>Base 64 encoded</TD></TR>"
        "</Table>\r\n"
        f'\t<A Href="certnew.cer?ReqID={request_id}&amp;Enc=b64"><LocID ID=locDownloadCert>'
        "Download certificate</LocID></A><BR>\r\n"
        f'\t<A Href="certnew.p7b?ReqID={request_id}&amp;Enc=b64"><LocID ID=locDownloadCert2>'
        "Download certificate chain</LocID></A>\r\n"
        f"<Script>\r\n\tvar nReqId = {request_id};\r\n</Script>\r\n",
    )


def pending_page(ca: str, request_id: int) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle><Font Face=Arial Size=-1><B>Certificate Pending</B></Font></P>\r\n"
        "<P><LocID ID=locInfoPending>Your certificate request has been received. However, you "
        "must wait for an administrator to issue the certificate you requested.</LocID></P>\r\n"
        f"<P><LocID ID=locReqIdText>Your Request Id is </LocID>{request_id}.</P>\r\n"
        "<P><LocID ID=locReturnWithin>Please return to this web site in a day or two to "
        "retrieve your certificate.</LocID></P>\r\n",
    )


def denied_page(ca: str, request_id: int | None, disposition: str) -> str:
    rid = (
        f"<P><LocID ID=locReqIdText>Your Request Id is </LocID>{request_id}.</P>\r\n"
        if request_id is not None
        else ""
    )
    return _page(
        ca,
        "<P ID=locPageTitle><Font Face=Arial Size=-1><B>Certificate Request Denied</B></Font>"
        "</P>\r\n<P><LocID ID=locDenied>Your certificate request was denied.</LocID></P>\r\n"
        f"{rid}<P><LocID ID=locDispMsg>The disposition message is "
        f'"{html.escape(disposition, quote=False)}".</LocID></P>\r\n'
        "<P>Contact your administrator for further information.</P>\r\n",
    )


def status_page(ca: str, disposition: str, last_status: str) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle><Font Face=Arial Size=-1><B>Certificate Services Error</B>"
        "</Font></P>\r\n<P>An unexpected error has occurred:</P>\r\n<Table>\r\n"
        "\t<TR><TD><B><LocID ID=locDispMsg>Disposition message:</LocID></B></TD>\r\n"
        f"\t\t<TD>{html.escape(disposition)}</TD></TR>\r\n"
        "\t<TR><TD><B><LocID ID=locLastStatus>LastStatus:</LocID></B></TD>\r\n"
        f"\t\t<TD>{html.escape(last_status)}</TD></TR>\r\n</Table>\r\n",
    )


def home_page(ca: str) -> str:
    return _page(
        ca,
        "<P ID=locPageTitle><B>Welcome</B></P>\r\n<P>Select a task:</P>\r\n"
        '<A Href="/certsrv/certrqus.asp">Request a certificate</A><BR>\r\n'
        '<A Href="/certsrv/certckpn.asp">View the status of a pending certificate request</A>'
        '<BR>\r\n<A Href="/certsrv/certcarc.asp">Download a CA certificate, certificate chain, '
        "or CRL</A>\r\n",
    )


def carc_page(ca: str) -> str:
    return _page(
        ca,
        "<Script Language=JavaScript>\r\n\tvar nRenewals=0;\r\n\tvar sCAName="
        f'"{html.escape(ca)}";\r\n</Script>\r\n'
        '<A Href="certnew.cer?ReqID=CACert&amp;Renewal=0&amp;Enc=b64">Download CA certificate'
        '</A>\r\n<A Href="certnew.p7b?ReqID=CACert&amp;Renewal=0&amp;Enc=b64">Download CA '
        "certificate chain</A>\r\n",
    )


def templates_page(ca: str, templates: list[str]) -> str:
    options = "".join(
        f'\t\t<Option Value="E;{html.escape(t)};1;1;2;0;0;0;0;0;0">{html.escape(t)}</Option>\r\n'
        for t in templates
    )
    return _page(
        ca,
        "<P ID=locPageTitle><B>Submit a Certificate Request or Renewal Request</B></P>\r\n"
        "<Form Name=SubmittedData Action=certfnsh.asp Method=Post>\r\n"
        "<TextArea Name=CertRequest ID=locTaRequest></TextArea>\r\n"
        f"\t<Select Name=lbCertTemplate ID=lbCertTemplateID>\r\n{options}\t</Select>\r\n"
        "</Form>\r\n",
    )
